"""The training recipe (pix2pix: L1 pre-training of G, then cGAN + lambda*L1).

Only the training entry point imports this package.
"""
