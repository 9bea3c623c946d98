"""The LiteRT (TFLite) backend: export through litert-torch (:mod:`.export`), the LiteRT
interpreter and tiled runner (:mod:`.runtime`), the hand-written flatbuffer of the plain ETDS
(:mod:`.flatbuffer`) and the repair of a converter bug (:mod:`.bias_repair`)."""
