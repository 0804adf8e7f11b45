"""The machinery behind the scikit-learn estimators: CLIPRanker and CLIPEmbedder, the
parameter table and presets, parsing inputs, the settings a fit builds, and inference.
Private: ``skrank`` is its public face.
"""
