"""Storage backends for live state: an explicit name -> factory registry lives in ``registry``."""
