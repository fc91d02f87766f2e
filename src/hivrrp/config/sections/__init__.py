"""The handlers of keepalived.conf's sections, one module per section.

config/build.py owns the Builder (value helpers, dispatch) and hands each
top-level block to the section function named in its TOP_LEVEL table.
"""
