"""Taking a trained model out of the project: checkpoints made ready for inference, ONNX export."""
