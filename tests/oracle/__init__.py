"""Real MLX (the ``mlx[cpu]`` wheel) as a test oracle for chainrule's MLX-style API."""
