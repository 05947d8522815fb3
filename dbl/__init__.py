"""DBL runtime: the JSON codec, the embedded services and the command line shared by every part."""
