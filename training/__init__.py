"""Training: DeepLabv3+ in Keras 3, its datasets, and the train / evaluate / export / quantize CLIs.

TensorFlow's C++ start-up chatter is turned down here, before any training module can import it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
