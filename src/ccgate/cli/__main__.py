from ccgate.cli import main

main()
