"""The ranking-aware adapter and how it trains: its torch modules, the losses, the linear
probe, the batches and the training loop. Private: the estimators are its public face.
"""
