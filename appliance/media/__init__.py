"""Tape: the on-tape format, libraries, cartridges and pools, and the jobs that write and read them."""
