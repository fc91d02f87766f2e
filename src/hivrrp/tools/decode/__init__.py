"""`hivrrp decode`: VRRP adverts out of captures, one line each."""
