"""What the embedded demos are made of, apart from the library: the quickstart pipeline and its
report, the scripted teacher it learns from, and tiny 🤗 models for tests and benches. Nothing in
the library imports from here (``tests/unit/test_architecture.py``)."""
