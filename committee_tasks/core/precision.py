"""The dtypes cached member outputs may have (numpy names; no numpy import, so option checking
stays light). float16 halves the cache; float32 keeps every bit of the member's output."""
OUTPUT_DTYPE_NAMES = ("float16", "float32")
