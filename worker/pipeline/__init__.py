"""The photo pipeline: stateless steps from an upload to a face the model can edit and back.

Decode (`images`), detect and align (`yunet`, `faces`), invert (`inversion`, through the
batching `engine`), composite an edit into the photo (`composite`); the face record `Encoded`
(`encoded`) and the errors each step may raise (`errors`). Every step takes plain values (pixel
limits, refinement options), never the service's settings, and keeps nothing between calls
except the loaded model, so the service and the training code (alignment of training photos,
calibration and evaluation on whole photos) run the same steps. Imports only `models`.
"""
