from hepfpga.cli import main

main()
