//! XaeroFlux engine (work in progress): the storage engine and the public API land here.
