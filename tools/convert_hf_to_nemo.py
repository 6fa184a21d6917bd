#!/usr/bin/env python
"""Thin wrapper: see nemo_thinkrm/convert.py (hf_to_nemo). Also `thinkrm convert`."""

import sys

from nemo_thinkrm.convert import hf_to_nemo

if __name__ == "__main__":  # megatron's checkpoint writer may start worker processes
    sys.exit(hf_to_nemo())
