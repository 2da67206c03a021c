"""CL methods, one file each, plugging into engine.loop through the hooks of base.Method."""
