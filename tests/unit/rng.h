/* rng.h - random numbers for the unit tests' property tests: splitmix64
 * from a seed the test sets, so that a failing seed replays. Header-only:
 * each test is a program of its own. (test_confirm.c and test_wire.c still
 * carry their own copies.) */
#ifndef HOPPER_TEST_RNG_H
#define HOPPER_TEST_RNG_H

#include <stdint.h>

static uint64_t rng_state;

static inline uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform enough below n (> 0) for tests: the modulo bias is 2^-64 * n. */
static inline uint64_t rnd_below(uint64_t n)
{
    return rnd() % n;
}

#endif
