from ssl_core.cli import main

main()
