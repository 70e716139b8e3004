"""hepfpga.firmware"""
