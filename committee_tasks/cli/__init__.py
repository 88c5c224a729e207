"""The command-line shells (`tools/*.py` and the `committee` command): they parse, call the API
and print; nothing below this package knows about argparse.
"""
