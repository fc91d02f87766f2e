from hivrrp.cli import main

main()
