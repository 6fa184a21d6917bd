"""Checkpoint command lines (``thinkrm convert``, ``tools/*.py``): conversion and its verification.

A package of its own because verifying a conversion runs the model through the
training engine (``training/``), which itself saves checkpoints with
``checkpoint/``: keeping the commands here keeps ``checkpoint`` below ``training``.
"""
