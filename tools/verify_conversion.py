#!/usr/bin/env python
"""Thin wrapper: see nemo_thinkrm/convert.py (verify). Also `thinkrm convert`."""

import sys

from nemo_thinkrm.convert import verify

if __name__ == "__main__":  # megatron's checkpoint writer may start worker processes
    sys.exit(verify())
