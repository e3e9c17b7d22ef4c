/*
 * dependency.c: two small DLLs for the loader's tests on Windows.
 *
 * With -DBUILD_DEPENDENCY it is wintun_test_dependency.dll, exporting one
 * function; without, it is wintun_test_dependent.dll, which imports that
 * function, so Windows must find wintun_test_dependency.dll to load it. The
 * loader asks for the DLL's own folder and System32 only: the dependency is
 * found beside the DLL, and not in the current directory or on PATH.
 */

#include <windows.h>

#ifdef BUILD_DEPENDENCY
__declspec(dllexport) int WintunTestDependency(void) { return 42; }
#else
__declspec(dllimport) int WintunTestDependency(void);
__declspec(dllexport) int WintunTestDependent(void) { return WintunTestDependency() + 1; }
#endif
