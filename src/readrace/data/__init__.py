"""The data contracts every stage shares: the manifest and its schema, pseudonyms, patient
splits, the image cache and its descriptor, and the subsets that models are trained and
tested on."""
