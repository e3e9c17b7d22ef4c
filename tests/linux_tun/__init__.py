"""The emulator bridged to a real Linux kernel through a TUN interface (root, own netns)."""
