"""hepfpga.quantize"""
