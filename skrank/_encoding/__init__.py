"""Images to frozen CLIP tokens and embeddings: weights, the frozen towers, decoding, the
Encoder, the token caches and their files on disk. Private: the estimators and
``skrank.parallel`` are its public face.
"""
