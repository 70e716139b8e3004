"""hepfpga.train"""
