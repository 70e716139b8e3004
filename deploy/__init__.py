"""hepfpga.deploy"""
