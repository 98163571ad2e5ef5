#!/bin/sh
# Runs an aarch64 program under qemu-user (there is no binfmt_misc here, so qemu is called
# explicitly). EDGELLM_QEMU_CPU picks the emulated CPU, so one build can be tested on several.
exec qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu "${EDGELLM_QEMU_CPU:-max}" "$@"
