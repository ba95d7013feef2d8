/* version.h - hopper's version, reported by -V and in server-properties. */
#ifndef HOPPER_VERSION_H
#define HOPPER_VERSION_H

#define HOPPER_VERSION "0.1.0"

#endif
