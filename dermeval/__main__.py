from dermeval.cli import main

main()
