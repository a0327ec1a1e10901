#ifndef CJOBD_PROCESS_H
#define CJOBD_PROCESS_H

/// Whether jobd's process limits were set (by a constructor, before main and before any
/// thread): called from main so that the linker keeps them.
int jobd_process_prepared(void);

#endif
