"""Models: the shared content encoder and quantizer, per-domain style encoders and AdaIN decoders,
multi-scale PatchGAN discriminators, the assembled VQ-I2I translator and the GPT content prior."""
