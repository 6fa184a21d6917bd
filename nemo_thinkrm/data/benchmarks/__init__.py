"""One module per benchmark: its adapter (schema, converter, hub id, splits), its sections and tags,
and the metrics of its own. The default data config of each is ``conf/data/<name>.yaml``."""
