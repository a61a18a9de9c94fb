"""Pure transforms over bar and tick frames: no I/O, a DataFrame in and a new DataFrame out."""
