"""Privacy: direct identifiers screened in the inputs (`pii`), and later pseudonymisation, DP-SGD and
the membership-inference audit (issue 22)."""
