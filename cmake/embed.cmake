# Turn the binary file IN into a C source OUT defining
# ldg_descriptor_set[] / ldg_descriptor_set_len (used by server reflection).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "#include <stddef.h>\n#include <stdint.h>\nconst uint8_t ldg_descriptor_set[] = {\n${body}\n};\nconst size_t ldg_descriptor_set_len = ${len};\n")
