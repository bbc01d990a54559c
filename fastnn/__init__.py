"""fastnn: see how neural networks learn, with kernels compiled three ways."""
