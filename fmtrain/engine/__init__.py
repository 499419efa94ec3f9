"""The training engine. Importing ``fmtrain.engine.trainer`` imports TensorFlow; this package does not."""
