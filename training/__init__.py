"""Training of the face model: data, DCGAN, encoders, attribute directions, evaluation."""
