"""ccmine library: text, language ID, encoders and margin math shared by the pipeline stages."""
