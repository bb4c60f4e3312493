"""Small utilities every layer uses: errors, atomic I/O, input checks, the offline switch
and fetching external resources."""
