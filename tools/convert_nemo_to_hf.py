#!/usr/bin/env python
"""Thin wrapper: see nemo_thinkrm/convert.py (nemo_to_hf). Also `thinkrm convert`."""

import sys

from nemo_thinkrm.convert import nemo_to_hf

if __name__ == "__main__":  # megatron's checkpoint writer may start worker processes
    sys.exit(nemo_to_hf())
