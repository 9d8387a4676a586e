RESET {{ name|catalog }}
