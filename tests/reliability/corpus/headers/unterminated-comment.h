/* a header that never ends its comment
typedef int X;
