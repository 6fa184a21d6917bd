"""Recipes made of stages (layer 8): each step is a ``thinkrm`` stage run as a child process
(``runtime/pipeline.py``), so a recipe is readable top to bottom and every step is what a user runs."""
