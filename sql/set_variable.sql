SET LOCAL {{ name|catalog }} = {{ value|literal }}
