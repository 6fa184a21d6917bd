"""Worker for test_launch: rank 0 fails with a one-line error while rank 1 waits in a collective."""

import datetime
import os
import sys

import torch.distributed as dist

dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
if int(os.environ["RANK"]) == 0:
    print("error: rank 0 refuses", file=sys.stderr)
    sys.exit(2)
dist.barrier()  # never completes: rank 0 is gone
