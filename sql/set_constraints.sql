SET CONSTRAINTS ALL {{ mode|catalog }}
