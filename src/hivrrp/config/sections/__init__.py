"""The handlers of keepalived.conf's sections, one module per section.

config/builder.py holds the Builder (value helpers, dispatch); config/build.py hands each
top-level block to the section function named in its TOP_LEVEL table.
"""
