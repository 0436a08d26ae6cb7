"""Teaching helpers: step-by-step explanations, labelled montages and code in other libraries.

Pure modules (NumPy, and Pillow for drawing only); the CLI commands call them.
"""
