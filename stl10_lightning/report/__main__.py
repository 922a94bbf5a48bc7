from stl10_lightning.report.cli import main

main()
